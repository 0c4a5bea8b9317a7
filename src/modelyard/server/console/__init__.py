"""The web console: its static assets (HTML, ES modules, CSS, vendored uPlot), the routes serving them, and the
read-only catalog of runs and model versions it shows."""
