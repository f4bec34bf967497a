"""backtesting.py's side of the whole-process benchmark (run by bench/whole_process.py as its own
process, the way a user runs a backtesting.py script): read the bench's CSV with pandas, flip long and
short on an SMA fast/slow cross with 1-unit market orders at the next open, commission on every fill,
no spread, print the result as one JSON line.

The cross is the rule the playdeck Play uses (Pine's `ta.crossover`: fast > slow now and fast <= slow
a bar before), so both sides trade on the same bars; `backtesting.lib.crossover` would want the
previous bar strictly below. Usage: python bench/bt_sma_flip.py CSV FAST SLOW COMMISSION CASH
"""
from __future__ import annotations

import json
import sys
import warnings


def main(argv: list[str]) -> int:
    path, fast_n, slow_n, commission, cash = argv[0], int(argv[1]), int(argv[2]), float(argv[3]), float(argv[4])
    import pandas as pd
    from backtesting import Backtest, Strategy

    raw = pd.read_csv(path)
    df = pd.DataFrame({"Open": raw["open"].to_numpy(), "High": raw["high"].to_numpy(), "Low": raw["low"].to_numpy(),
                       "Close": raw["close"].to_numpy(), "Volume": raw["volume"].to_numpy()},
                      index=pd.to_datetime(raw["timestamp"], unit="ms"))

    def sma(x, n):
        return pd.Series(x).rolling(n).mean().to_numpy()

    class SmaFlip(Strategy):
        def init(self):
            self.fast = self.I(sma, self.data.Close, fast_n)
            self.slow = self.I(sma, self.data.Close, slow_n)

        def next(self):
            f, s = self.fast, self.slow
            if f[-1] > s[-1] and f[-2] <= s[-2]:
                self.position.close()
                self.buy(size=1)
            elif f[-1] < s[-1] and f[-2] >= s[-2]:
                self.position.close()
                self.sell(size=1)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = Backtest(df, SmaFlip, cash=cash, commission=commission, finalize_trades=True).run()
    print(json.dumps({"trades": int(stats["# Trades"]), "final_equity": float(stats["Equity Final [$]"])}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
