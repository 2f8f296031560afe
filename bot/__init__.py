"""Refund assistant for 小年卡盟."""
