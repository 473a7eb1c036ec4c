//! The CSV export's lines: money as yuan with two places, times in China time.

use crate::orders::Order;

/// Orders fetched per round trip by the CSV export.
pub const EXPORT_BATCH: i64 = 500;

/// One CSV field: quoted when needed, and a leading `=`, `+`, `-`, `@` (a spreadsheet
/// formula) defused with a `'`, since subjects come from shops' customers.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The CSV export's header line.
pub const CSV_HEADER: &str = "order_id,created_at,subject,amount,refunded,currency,status,late,channel,paid_at,provider_trade_no\r\n";

/// Orders as CSV lines (money as yuan with two places, times in China time).
pub fn csv_lines(orders: &[Order]) -> String {
    let mut out = String::new();
    for o in orders {
        let fields = [
            o.id.as_str().to_string(),
            app::clock::beijing(o.created_at),
            o.subject.clone(),
            o.amount.yuan_string(),
            o.refunded_amount.yuan_string(),
            "CNY".to_string(),
            o.status.as_str().to_string(),
            o.late.to_string(),
            o.paid_channel
                .map(|c| c.as_str().to_string())
                .unwrap_or_default(),
            o.paid_at.map(app::clock::beijing).unwrap_or_default(),
            o.provider_trade_no.clone().unwrap_or_default(),
        ];
        out.push_str(
            &fields
                .iter()
                .map(|f| csv_field(f))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("tea"), "tea");
        assert_eq!(csv_field("tea, green"), "\"tea, green\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("-1+1,x"), "\"'-1+1,x\"");
    }
}
