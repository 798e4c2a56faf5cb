"""Protocol code for Secure Remote Access: no Home Assistant imports allowed here."""
