"""Message streams: the Message Streams API and the only writer of `message_streams`."""
