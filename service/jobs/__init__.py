"""One job system for every long task: the queue (state store rows), the kinds, the runner."""
