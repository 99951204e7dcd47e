"""What spans the apps: the dashboard, the demo data, the periodic jobs' runner and the
rotation of encryption keys. The top layer below config: it may import every app, and no
app imports it."""
