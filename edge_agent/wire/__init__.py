"""What travels between boards: the versioned messages, the topic names and the MQTT client."""
