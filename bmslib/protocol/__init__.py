"""Sans-IO BMS protocols: request builders, frame assemblers and decoders. No bleak, no asyncio."""
