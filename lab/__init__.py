"""hardened.stack lab tooling: systemd containers that stand in for real hosts."""
