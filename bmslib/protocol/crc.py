"""Checksums used by BMS protocols. Pure functions over bytes."""

from __future__ import annotations


def sum8(data: bytes) -> int:
    """Sum of bytes modulo 256 (JK, JBD auth frames)."""
    return sum(data) & 0xFF


def sum16_complement(data: bytes) -> int:
    """(0x10000 - sum of bytes) & 0xFFFF (JBD frames)."""
    return (0x10000 - sum(data)) & 0xFFFF


def _make_crc16_table(poly: int) -> tuple[int, ...]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_MODBUS_TABLE = _make_crc16_table(0xA001)


def crc16_modbus(data: bytes) -> int:
    """CRC-16/MODBUS (poly 0x8005 reflected, init 0xFFFF). Transmitted little-endian."""
    crc = 0xFFFF
    for b in data:
        crc = (crc >> 8) ^ _MODBUS_TABLE[(crc ^ b) & 0xFF]
    return crc


def crc8_maxim(data: bytes) -> int:
    """CRC-8/MAXIM (Dallas 1-Wire: poly 0x31 reflected, init 0)."""
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8C if crc & 1 else crc >> 1
    return crc
