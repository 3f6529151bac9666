"""Daly BMS protocol, sans-IO: Modbus RTU framing (``rtu``), the D2 Modbus registers (``modbus``), the
legacy A5 protocol (``legacy``), the read-only 0x81 protocol (``p81``), the codec per protocol
(``codec``) and the codec that finds the protocol from the replies (``auto``)."""
