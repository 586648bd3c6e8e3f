"""Web pages (Starlette, served by uvicorn inside `listmgr serve`): /personal/, list owners'
and site admins' pages, public list pages and one-click unsubscribe. Trusts nothing a
browser sends: forms carry CSRF tokens, sessions are signed cookies, bodies are capped."""
