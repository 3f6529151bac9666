"""JK BMS protocol, sans-IO: framing and requests (``framing``), the JK02 and JK04 cell-info and settings
layouts (``jk02``, ``jk04``), the host-side decoder of the device-info frame (``device_info_decoder``)
and the codec joining them (``codec``)."""
