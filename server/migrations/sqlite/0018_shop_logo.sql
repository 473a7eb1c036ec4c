-- A shop's logo (#18): an https:// image URL the merchant gives on the board, shown beside
-- its name on the customer's pages (checkout, aggregate code, fixed code, receipt). NULL:
-- the name alone.
ALTER TABLE merchants ADD COLUMN logo_url TEXT;
