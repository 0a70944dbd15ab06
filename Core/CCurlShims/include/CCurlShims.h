#pragma once
#include <curl/curl.h>
#include <stddef.h>
// curl_easy_setopt / curl_easy_getinfo are variadic: one typed wrapper per argument type.
typedef size_t (*nebula_curl_write_cb)(char *ptr, size_t size, size_t nmemb, void *userdata);
CURLcode nebula_curl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode nebula_curl_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode nebula_curl_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode nebula_curl_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value);
CURLcode nebula_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value);
CURLcode nebula_curl_setopt_write_callback(CURL *handle, CURLoption option, nebula_curl_write_cb cb);
CURLcode nebula_curl_getinfo_long(CURL *handle, CURLINFO info, long *out);
CURLcode nebula_curl_getinfo_double(CURL *handle, CURLINFO info, double *out);
