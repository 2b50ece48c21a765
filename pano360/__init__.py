"""pano360: turn an ordinary perspective video into a full 360-degree equirectangular video."""

__version__ = "0.1.0"
