"""The embedded demo corpus: real text harvested from this machine (stdlib, packages, /usr/share/doc, man pages, Bibles)."""
