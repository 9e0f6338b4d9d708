"""Pydantic wire types shared by the server and the worker SDK."""
