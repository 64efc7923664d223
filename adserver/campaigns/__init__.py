"""What advertisers buy: campaigns (price, budget, dates, audience, caps), their budgets in Redis,
and their management by marketers, in the console (``/reports/campaigns``) and by API token
(``/api/v1/campaigns``)."""
