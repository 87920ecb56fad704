"""`python -m bench` (`make bench`): the backup and restore benchmark of the performance issue."""
