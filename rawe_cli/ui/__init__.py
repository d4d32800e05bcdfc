"""What the terminal shows: Rich table builders, the dashboard, plots and log lines."""
