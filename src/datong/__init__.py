"""datong (打通): one member per person across every channel a retail brand sells through."""

__version__ = "0.1.0"
