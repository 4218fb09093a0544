"""Tables: the fleet, a kit's models and jobs, inference results, deploy targets; rows are plain data."""
