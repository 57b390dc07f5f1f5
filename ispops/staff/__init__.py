"""Staff: the people who log in (per ISP schema; platform admins in public), their roles,
the branches they may be limited to, and login throttling."""
