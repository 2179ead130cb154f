"""Example task apps that publish rollouts into the lake (run them from the repository root)."""
