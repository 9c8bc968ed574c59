#!/usr/bin/ruby
# Publish one event exactly as a Myxi application does (Myxi.push_event in
# lib/myxi.rb, with Debian's ruby-bunny):
#
#   bunny_publish.rb URL EXCHANGE ROUTING_KEY EVENT [PAYLOAD_JSON]
#
# PAYLOAD_JSON is parsed into Ruby objects first (an application passes a
# Hash), so the body is Ruby's own to_json of it; it defaults to {} as in
# push_event. A ROUTING_KEY made of digits is passed as an Integer, so
# routing_key.to_s is exercised the way `push_event(:x, widget.id, ...)` does.
# Exit status: 0 published (the connection is closed cleanly, so the
# message has reached the broker), 1 on any error, 2 on bad arguments.
require "bunny"
require "json"

if ARGV.length < 4 || ARGV.length > 5
  warn "usage: bunny_publish.rb URL EXCHANGE ROUTING_KEY EVENT [PAYLOAD_JSON]"
  exit 2
end

url, exchange, routing_key, event, payload_json = ARGV
routing_key = Integer(routing_key, 10) if routing_key =~ /\A-?[0-9]+\z/
payload = payload_json.nil? ? {} : JSON.parse(payload_json, quirks_mode: true)

begin
  # Myxi.bunny / Myxi.channel / Myxi.exchanges / Myxi.push_event, inlined.
  bunny = Bunny.new(url, logger: Logger.new(nil))
  bunny.start
  channel = bunny.create_channel
  exch = channel.direct(exchange.to_s)
  exch.publish({:event => event, :payload => payload}.to_json,
               :routing_key => routing_key.to_s)
  bunny.close
rescue StandardError => e
  warn "bunny_publish.rb: #{e.class}: #{e.message}"
  exit 1
end
