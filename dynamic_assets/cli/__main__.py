"""`python -m dynamic_assets.cli`: the same as the `dynamic-assets` command."""

from dynamic_assets.cli import main

main()
