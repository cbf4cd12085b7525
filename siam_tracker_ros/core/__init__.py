"""Tracking core: no ROS imports anywhere below this package."""
