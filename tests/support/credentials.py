"""The credentials the authentication tests use, each kind once; SECRETS: the values no output may ever show."""

STATIC_TOKEN = "static-SECRET-token-0001"
AK, SK = "AKPERMANENT00001", "SECRET-sk-permanent-0001"
TEMP_AK, TEMP_SK, SECURITY_TOKEN = "AKTEMPORARY00001", "SECRET-sk-temporary-0001", "SECRET-sts-token-0001"
USER, PASSWORD, DOMAIN = "sync-robot", "SECRET-password-0001", "example-account"
SECRETS = (STATIC_TOKEN, SK, TEMP_SK, SECURITY_TOKEN, PASSWORD)
# The variables of a permanent AK/SK, and of an IAM user.
AKSK_ENV = {"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}
IAM_ENV = {"DDS_IAM_USERNAME": USER, "DDS_IAM_PASSWORD": PASSWORD, "DDS_IAM_DOMAIN": DOMAIN}
