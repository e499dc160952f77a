"""The console in the browser: GET /ui, its static files, and the JSON it reads."""
