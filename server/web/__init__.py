"""HTTP edge: pages (jinja2), the REST API and its OpenAPI document."""
