"""The `c2f` command: the embedded stack for laptops and CI, demo data, status."""
