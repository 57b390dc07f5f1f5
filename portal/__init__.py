"""The subscriber portal on each ISP's host, under /my/."""
