"""JBD BMS protocol, sans-IO: the ``DD`` register frames (``frames``) and the ``FF AA`` password
handshake of newer firmware (``auth``)."""
