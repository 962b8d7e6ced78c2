"""Bytes on a wire: transports, COBS framing with CRC-32, stop-and-wait requests."""

from rig.link.errors import DeviceRebooted
from rig.link.frame import FrameDecoder, FrameError, Packet, encode_frame
from rig.link.link import Link, LinkStats, TrafficEvent, stream_logger
from rig.link.policy import LinkPolicy
from rig.link.transport import PipeTransport, SerialTransport, Transport

__all__ = ["DeviceRebooted", "FrameDecoder", "FrameError", "Link", "LinkPolicy", "LinkStats",
           "Packet", "PipeTransport", "SerialTransport", "TrafficEvent", "Transport",
           "encode_frame", "stream_logger"]
