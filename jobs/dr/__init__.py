"""Disaster recovery: `dr-rebuild` (a lost cluster back from code and the newest offsite set),
its resume state, the RTO/RPO timeline, and the sample data the demo loses and brings back."""
