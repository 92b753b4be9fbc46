"""The desktop app: its windows, and the resources (icons, sounds, style sheets) they use."""
