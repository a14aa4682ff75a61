"""One module per tab of the page: its layout, and its handlers (thin calls into lfqa_demo.service)."""
