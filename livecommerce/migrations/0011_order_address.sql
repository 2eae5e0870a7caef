-- The shipping address of an order, in the shape wx.chooseAddress returns (userName,
-- telNumber, provinceName, cityName, countyName, detailInfo, postalCode). Only the buyer and
-- the order's host can read it; it is never written to logs.
ALTER TABLE orders ADD COLUMN address jsonb;
-- The host's order list filters by status (to ship = paid) newest first.
CREATE INDEX orders_host_status_idx ON orders (host_id, status, id DESC);
