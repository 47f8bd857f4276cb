"""PostgreSQL: migrations, rows and every SQL statement of tgcast. No SQL lives outside this package."""
