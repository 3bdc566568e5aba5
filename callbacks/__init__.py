"""Lightning callbacks: the figures and logs of each task, and the few every task shares."""
