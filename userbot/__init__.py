"""The account gateway (MTProto): the interface, the Telethon implementation and the emulator."""
