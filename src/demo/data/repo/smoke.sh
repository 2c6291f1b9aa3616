#!/bin/sh
curl -sX POST https://api.airwallex.com/api/v1/authentication/login \
  -H "x-client-id: {client_id}" \
  -H "x-api-key: {script_key}"
