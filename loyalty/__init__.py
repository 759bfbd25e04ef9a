"""The Members Groups service: project package and the tenant (loyalty club) app."""
