"""siautil."""
