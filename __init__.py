"""playdeck: a trading-strategy compiler and operator console for Bybit USDT perpetuals."""
