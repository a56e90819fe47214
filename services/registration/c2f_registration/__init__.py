"""Registration: where clusters, members, events and participants enter the platform."""
