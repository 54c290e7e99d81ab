"""Data removals (`/data-removals`, account token): erase what Postgate holds about one address, in the background."""
