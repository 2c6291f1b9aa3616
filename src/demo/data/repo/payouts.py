import os

from airwallex import Client

client = Client(
    client_id=os.environ["AIRWALLEX_CLIENT_ID"],
    api_key=os.environ["AIRWALLEX_API_KEY"],
)
