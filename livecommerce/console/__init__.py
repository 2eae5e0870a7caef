"""The host console (``/console``) and the audience page (``/live``): host accounts, sign-in
sessions, the pages' static files and the few JSON endpoints only they need."""
