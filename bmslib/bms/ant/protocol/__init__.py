"""ANT BMS protocol, sans-IO: the 2021 frames (``frames_2021``, ``data_2021``, ``control``), the legacy
protocol (``legacy``), the codes both share (``codes``) and the codec that picks the generation (``codec``)."""
