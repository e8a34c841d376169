# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Encoders: a value made safe for one file format (one function per format)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class EncodeError(ValueError):
    """The format cannot carry the value; the message says which character."""


def pgpass_field(value):
    """One field of a libpq password file (``host:port:db:user:password``): ``\\`` and ``:``
    are escaped with a backslash, so an IPv6 host or a password with a colon stays one field.
    A newline cannot be carried (the file is line-based)."""
    text = u"%s" % value
    if "\n" in text or "\r" in text:
        raise EncodeError("a libpq password file field cannot hold a line break")
    return text.replace("\\", "\\\\").replace(":", "\\:")
