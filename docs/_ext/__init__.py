"""Small helpers of the Sphinx build (docs/conf.py): API pages, gallery scrapers, studies pages."""
