"""Accounts: one login at one broker each, as data (docs/accounts.md, docs/interface.md "Accounts").

`model` is the account and the view the API shows; `store` keeps them in the database, credentials and the
day's session encrypted; `environment` turns a broker's environment variables into its one read-only account;
`expiry` says when a day's session ends, per broker; `directory` lists both kinds together.
"""
